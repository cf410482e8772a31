-- The directory: org tree, posts, people, mail accounts, OA groups, the
-- change log that mirrors consume, and API keys.
-- Ids are UUIDs (version 7) made by egret; an OA id is kept beside them
-- so that the OA may renumber nothing of ours.

-- +goose Up
CREATE TABLE org_units (
    id            CHAR(36)     NOT NULL,
    oa_id         VARCHAR(64)  NULL,
    kind          VARCHAR(16)  NOT NULL,
    name          VARCHAR(255) NOT NULL,
    parent_id     CHAR(36)     NULL,
    sort_order    INT          NOT NULL DEFAULT 0,
    available     BOOLEAN      NOT NULL DEFAULT TRUE,
    oa_alter_time VARCHAR(23)  NOT NULL DEFAULT '',
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_org_units_oa_id (oa_id),
    KEY ix_org_units_parent (parent_id),
    CONSTRAINT fk_org_units_parent FOREIGN KEY (parent_id) REFERENCES org_units (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE posts (
    id            CHAR(36)     NOT NULL,
    oa_id         VARCHAR(64)  NULL,
    name          VARCHAR(255) NOT NULL,
    unit_id       CHAR(36)     NULL,
    sort_order    INT          NOT NULL DEFAULT 0,
    available     BOOLEAN      NOT NULL DEFAULT TRUE,
    oa_alter_time VARCHAR(23)  NOT NULL DEFAULT '',
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_posts_oa_id (oa_id),
    KEY ix_posts_unit (unit_id),
    CONSTRAINT fk_posts_unit FOREIGN KEY (unit_id) REFERENCES org_units (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE people (
    id            CHAR(36)     NOT NULL,
    oa_id         VARCHAR(64)  NULL,
    kind          VARCHAR(16)  NOT NULL DEFAULT 'staff',
    login         VARCHAR(128) NOT NULL,
    login_lower   VARCHAR(128) NOT NULL,
    display_name  VARCHAR(255) NOT NULL,
    nickname      VARCHAR(255) NOT NULL DEFAULT '',
    employee_no   VARCHAR(64)  NOT NULL DEFAULT '',
    mobile        VARCHAR(32)  NOT NULL DEFAULT '',
    mobile_raw    VARCHAR(64)  NOT NULL DEFAULT '',
    work_phone    VARCHAR(64)  NOT NULL DEFAULT '',
    sex           VARCHAR(8)   NOT NULL DEFAULT '',
    alt_email     VARCHAR(320) NOT NULL DEFAULT '',
    unit_id       CHAR(36)     NULL,
    sort_order    INT          NOT NULL DEFAULT 0,
    status        VARCHAR(16)  NOT NULL,
    oa_alter_time VARCHAR(23)  NOT NULL DEFAULT '',
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_people_oa_id (oa_id),
    UNIQUE KEY uq_people_login_lower (login_lower),
    KEY ix_people_unit (unit_id),
    KEY ix_people_status (status),
    CONSTRAINT fk_people_unit FOREIGN KEY (unit_id) REFERENCES org_units (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE person_posts (
    person_id CHAR(36) NOT NULL,
    post_id   CHAR(36) NOT NULL,
    PRIMARY KEY (person_id, post_id),
    KEY ix_person_posts_post (post_id),
    CONSTRAINT fk_person_posts_person FOREIGN KEY (person_id) REFERENCES people (id),
    CONSTRAINT fk_person_posts_post FOREIGN KEY (post_id) REFERENCES posts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE accounts (
    id                  CHAR(36)     NOT NULL,
    person_id           CHAR(36)     NULL,
    address             VARCHAR(320) NOT NULL,
    status              VARCHAR(16)  NOT NULL,
    password_hash       VARCHAR(255) NOT NULL DEFAULT '',
    password_changed_at DATETIME(6)  NULL,
    created_at          DATETIME(6)  NOT NULL,
    updated_at          DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_accounts_person (person_id),
    UNIQUE KEY uq_accounts_address (address),
    CONSTRAINT fk_accounts_person FOREIGN KEY (person_id) REFERENCES people (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE org_groups (
    id            CHAR(36)     NOT NULL,
    oa_id         VARCHAR(64)  NULL,
    name          VARCHAR(255) NOT NULL,
    available     BOOLEAN      NOT NULL DEFAULT TRUE,
    oa_alter_time VARCHAR(23)  NOT NULL DEFAULT '',
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_org_groups_oa_id (oa_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE group_members (
    group_id    CHAR(36)    NOT NULL,
    member_kind VARCHAR(16) NOT NULL,
    member_id   CHAR(36)    NOT NULL,
    PRIMARY KEY (group_id, member_kind, member_id),
    KEY ix_group_members_member (member_id),
    CONSTRAINT fk_group_members_group FOREIGN KEY (group_id) REFERENCES org_groups (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE change_log (
    seq       BIGINT       NOT NULL AUTO_INCREMENT,
    at        DATETIME(6)  NOT NULL,
    entity    VARCHAR(16)  NOT NULL,
    entity_id CHAR(36)     NOT NULL,
    op        VARCHAR(16)  NOT NULL,
    data      MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (seq),
    KEY ix_change_log_entity (entity, entity_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_keys (
    id           CHAR(36)     NOT NULL,
    name         VARCHAR(128) NOT NULL,
    secret_hash  CHAR(64)     NOT NULL,
    scopes       VARCHAR(255) NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    last_used_at DATETIME(6)  NULL,
    revoked_at   DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_api_keys_name (name),
    UNIQUE KEY uq_api_keys_secret (secret_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE api_keys;
DROP TABLE change_log;
DROP TABLE group_members;
DROP TABLE org_groups;
DROP TABLE accounts;
DROP TABLE person_posts;
DROP TABLE people;
DROP TABLE posts;
DROP TABLE org_units;
