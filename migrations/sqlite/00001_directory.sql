-- The directory (SQLite form; the MySQL file of the same number is the
-- reference):
-- The directory: org tree, posts, people, mail accounts, OA groups, the
-- change log that mirrors consume, and API keys.
-- Ids are UUIDs (version 7) made by egret; an OA id is kept beside them
-- so that the OA may renumber nothing of ours.

-- +goose Up
CREATE TABLE org_units (
    id                  TEXT     NOT NULL,
    oa_id               TEXT     NULL,
    kind                TEXT     NOT NULL,
    name                TEXT     NOT NULL,
    parent_id           TEXT     NULL,
    sort_order          INT      NOT NULL DEFAULT 0,
    available           BOOLEAN  NOT NULL DEFAULT TRUE,
    oa_alter_time       TEXT     NOT NULL DEFAULT '',
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT fk_org_units_parent FOREIGN KEY (parent_id) REFERENCES org_units (id)
);
CREATE UNIQUE INDEX uq_org_units_oa_id ON org_units (oa_id);
CREATE INDEX ix_org_units_parent ON org_units (parent_id);

CREATE TABLE posts (
    id                  TEXT     NOT NULL,
    oa_id               TEXT     NULL,
    name                TEXT     NOT NULL,
    unit_id             TEXT     NULL,
    sort_order          INT      NOT NULL DEFAULT 0,
    available           BOOLEAN  NOT NULL DEFAULT TRUE,
    oa_alter_time       TEXT     NOT NULL DEFAULT '',
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT fk_posts_unit FOREIGN KEY (unit_id) REFERENCES org_units (id)
);
CREATE UNIQUE INDEX uq_posts_oa_id ON posts (oa_id);
CREATE INDEX ix_posts_unit ON posts (unit_id);

CREATE TABLE people (
    id                  TEXT     NOT NULL,
    oa_id               TEXT     NULL,
    kind                TEXT     NOT NULL DEFAULT 'staff',
    login               TEXT     NOT NULL,
    login_lower         TEXT     NOT NULL,
    display_name        TEXT     NOT NULL,
    nickname            TEXT     NOT NULL DEFAULT '',
    employee_no         TEXT     NOT NULL DEFAULT '',
    mobile              TEXT     NOT NULL DEFAULT '',
    mobile_raw          TEXT     NOT NULL DEFAULT '',
    work_phone          TEXT     NOT NULL DEFAULT '',
    sex                 TEXT     NOT NULL DEFAULT '',
    alt_email           TEXT     NOT NULL DEFAULT '',
    unit_id             TEXT     NULL,
    sort_order          INT      NOT NULL DEFAULT 0,
    status              TEXT     NOT NULL,
    oa_alter_time       TEXT     NOT NULL DEFAULT '',
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT fk_people_unit FOREIGN KEY (unit_id) REFERENCES org_units (id)
);
CREATE UNIQUE INDEX uq_people_oa_id ON people (oa_id);
CREATE UNIQUE INDEX uq_people_login_lower ON people (login_lower);
CREATE INDEX ix_people_unit ON people (unit_id);
CREATE INDEX ix_people_status ON people (status);

CREATE TABLE person_posts (
    person_id           TEXT     NOT NULL,
    post_id             TEXT     NOT NULL,
    PRIMARY KEY (person_id, post_id),
    CONSTRAINT fk_person_posts_person FOREIGN KEY (person_id) REFERENCES people (id),
    CONSTRAINT fk_person_posts_post FOREIGN KEY (post_id) REFERENCES posts (id)
);
CREATE INDEX ix_person_posts_post ON person_posts (post_id);

CREATE TABLE accounts (
    id                  TEXT     NOT NULL,
    person_id           TEXT     NULL,
    address             TEXT     NOT NULL,
    status              TEXT     NOT NULL,
    password_hash       TEXT     NOT NULL DEFAULT '',
    password_changed_at DATETIME NULL,
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT fk_accounts_person FOREIGN KEY (person_id) REFERENCES people (id)
);
CREATE UNIQUE INDEX uq_accounts_person ON accounts (person_id);
CREATE UNIQUE INDEX uq_accounts_address ON accounts (address);

CREATE TABLE org_groups (
    id                  TEXT     NOT NULL,
    oa_id               TEXT     NULL,
    name                TEXT     NOT NULL,
    available           BOOLEAN  NOT NULL DEFAULT TRUE,
    oa_alter_time       TEXT     NOT NULL DEFAULT '',
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX uq_org_groups_oa_id ON org_groups (oa_id);

CREATE TABLE group_members (
    group_id            TEXT     NOT NULL,
    member_kind         TEXT     NOT NULL,
    member_id           TEXT     NOT NULL,
    PRIMARY KEY (group_id, member_kind, member_id),
    CONSTRAINT fk_group_members_group FOREIGN KEY (group_id) REFERENCES org_groups (id)
);
CREATE INDEX ix_group_members_member ON group_members (member_id);

CREATE TABLE change_log (
    seq                 INTEGER  PRIMARY KEY AUTOINCREMENT,
    at                  DATETIME NOT NULL,
    entity              TEXT     NOT NULL,
    entity_id           TEXT     NOT NULL,
    op                  TEXT     NOT NULL,
    data                TEXT     NOT NULL
);
CREATE INDEX ix_change_log_entity ON change_log (entity, entity_id);

CREATE TABLE api_keys (
    id                  TEXT     NOT NULL,
    name                TEXT     NOT NULL,
    secret_hash         TEXT     NOT NULL,
    scopes              TEXT     NOT NULL,
    created_at          DATETIME NOT NULL,
    last_used_at        DATETIME NULL,
    revoked_at          DATETIME NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX uq_api_keys_name ON api_keys (name);
CREATE UNIQUE INDEX uq_api_keys_secret ON api_keys (secret_hash);

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
