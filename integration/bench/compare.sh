#!/usr/bin/env bash
# compare.sh measures egret against Postfix and Dovecot from Debian's
# packages, side by side on this machine, and prints the figures that
# integration/bench/README.md records.
#
#   integration/bench/compare.sh            4 KB and 100 KB, 10,000 messages
#   SMTP_MESSAGES=2000 integration/bench/compare.sh
#
# FETCH_MESSAGES and FETCH_ROUNDS size the IMAP part; KEEP_WORK=1 keeps
# the temporary folder, with every server's log, for a look afterwards.
#
# Everything runs on 127.0.0.1 and under one temporary folder: egret
# serve (SQLite), a private Postfix (its own main.cf, master.cf and
# queue; `postfix -c DIR`), a private Dovecot (its own dovecot.conf).
# The system's postfix and dovecot services are neither started nor
# touched. Each server is stopped by its own pid or its own `stop` at
# the end, even when a step fails.
#
# SMTP: smtp-source, 16 sessions, SMTP_MESSAGES messages of each size,
# to egret's MX port (queue on disk, synced, before 250; then LMTP into
# the Maildir store) and to Postfix's smtpd (cleanup fsyncs the queue
# file before 250; the recipient's domain is delivered by discard).
#
# IMAP: the same FETCH_MESSAGES-message Maildir, written by
# make_mailbox.py, is read by imap_fetch.py from egret and from Dovecot
# (maildir:, no index at the start for either).
#
# Root is needed to install postfix and dovecot-imapd when missing and
# for Postfix's and Dovecot's privilege separation.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
smtp_messages=${SMTP_MESSAGES:-10000}
fetch_messages=${FETCH_MESSAGES:-10000}
rounds=${FETCH_ROUNDS:-3}

say() { printf 'compare: %s\n' "$*" >&2; }
die() {
	say "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: Postfix and Dovecot drop privileges themselves"

need=()
[ -x /usr/sbin/postfix ] || need+=(postfix)
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]} from the Debian archive (no system instance is configured)"
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
smtp_source=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$smtp_source" ] || die "smtp-source not found (package postfix)"

work=$(mktemp -d /tmp/egret-compare.XXXXXX)
chmod 755 "$work"
egret_pid=
postfix_dir=
dovecot_pid=
cleanup() {
	[ -n "$dovecot_pid" ] && kill "$dovecot_pid" 2>/dev/null || true
	[ -n "$postfix_dir" ] && /usr/sbin/postfix -c "$postfix_dir" stop >/dev/null 2>&1 || true
	[ -n "$egret_pid" ] && kill "$egret_pid" 2>/dev/null || true
	sleep 1
	if [ -n "${KEEP_WORK:-}" ]; then
		say "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 1 100); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing answers on 127.0.0.1:$1"
}

say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo), $(df -h --output=source,fstype "$work" | tail -n 1 | tr -s ' ')"
say "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# ---- egret ---------------------------------------------------------------

(cd "$top" && go build -o "$work/egret" ./cmd/egret)
key=$(head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9)
e_http=$(free_port) e_smtp=$(free_port) e_imap=$(free_port)
export EGRET_NODE_DATA_DIR=$work/egret-data EGRET_DATABASE_URL=sqlite:$work/egret.db \
	EGRET_HTTP_ADDR=127.0.0.1:$e_http EGRET_SMTP_ADDR=127.0.0.1:$e_smtp \
	EGRET_IMAP_ADDR=127.0.0.1:$e_imap EGRET_MAIL_DOMAIN=egretair.example \
	EGRET_API_BOOTSTRAP_KEY=$key EGRET_SUBMISSION_ADDR=127.0.0.1:$(free_port) \
	EGRET_SUBMISSION_TLS_ADDR=127.0.0.1:$(free_port) \
	EGRET_OUTBOUND_RESOLVER=127.0.0.1:$(free_port)
start_egret() {
	"$work/egret" serve >>"$work/egret.log" 2>&1 &
	egret_pid=$!
	wait_port "$e_http"
	wait_port "$e_imap"
}
stop_egret() {
	kill "$egret_pid"
	wait "$egret_pid" || true
	egret_pid=
}
start_egret
password=benchmark-password-1
account=$(curl -fsS -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d "{\"login\":\"crew\",\"display_name\":\"Crew\",\"password\":\"$password\"}" \
	"http://127.0.0.1:$e_http/api/v1/users" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["account"]["id"])')
say "egret $("$work/egret" version 2>/dev/null || echo dev) on 127.0.0.1:$e_smtp (SMTP), :$e_imap (IMAP); account $account"

# ---- Postfix ---------------------------------------------------------------

postfix_dir=$work/postfix
p_smtp=$(free_port)
mkdir -p "$postfix_dir/spool" "$postfix_dir/data"
cat >"$postfix_dir/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $postfix_dir/spool
data_directory = $postfix_dir/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localhost
mydomain = localhost
mydestination = bench.example
mynetworks = 127.0.0.0/8
local_transport = discard:
local_recipient_maps =
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP
maillog_file = $postfix_dir/postfix.log
maillog_file_prefixes = $postfix_dir
biff = no
CF
# Debian's master.cf, with smtpd moved to a loopback port and nothing
# run chrooted (the private queue has no chroot tree).
awk -v port="$p_smtp" '
	/^#/ || /^[ \t]/ || NF < 8 { print; next }
	$1 == "smtp" && $2 == "inet" { $1 = "127.0.0.1:" port }
	{ $5 = "n"; print }
' /usr/share/postfix/master.cf.dist >"$postfix_dir/master.cf"
chown postfix "$postfix_dir/data"
# Postfix reports to stderr only on a terminal; its log file is named
# above.
/usr/sbin/postfix -c "$postfix_dir" check 2>/dev/null || die "postfix check failed"
/usr/sbin/postfix -c "$postfix_dir" start || die "postfix start failed (log: $postfix_dir/postfix.log)"
wait_port "$p_smtp"
say "postfix $(/usr/sbin/postconf -c "$postfix_dir" -h mail_version) on 127.0.0.1:$p_smtp"
ss -ltn | grep -E ":$p_smtp\b" | grep -v 127.0.0.1 && die "postfix listens beyond loopback"

smtp_rate() { # NAME PORT TO SIZE
	local start end
	start=$(date +%s.%N)
	"$smtp_source" -s 16 -m "$smtp_messages" -l "$4" -f ops@remote.example -t "$3" "127.0.0.1:$2"
	end=$(date +%s.%N)
	python3 -c "import sys; n,s,e=map(float,sys.argv[1:]); print('%-8s %6d bytes  %5d messages  %6.2f s  %7.0f msg/s' % ('$1', $4, n, e-s, n/(e-s)))" \
		"$smtp_messages" "$start" "$end"
}

echo
echo "SMTP, smtp-source -s 16 -m $smtp_messages"
for size in 4096 102400; do
	smtp_rate egret "$e_smtp" crew@egretair.example "$size"
	smtp_rate postfix "$p_smtp" crew@bench.example "$size"
done

# What was accepted got where it should: the discard lines in Postfix's
# log, the files in egret's INBOX once its queue has drained.
sleep 5
say "postfix discarded $(grep -c 'postfix/discard.*status=sent' "$postfix_dir/postfix.log" || true) of $((2 * smtp_messages))"
inbox=$EGRET_NODE_DATA_DIR/mail/accounts/$account/mailboxes/INBOX
for _ in $(seq 1 120); do
	[ "$(find "$inbox/cur" "$inbox/new" -type f | wc -l)" -ge $((2 * smtp_messages)) ] && break
	sleep 1
done
say "egret delivered $(find "$inbox/cur" "$inbox/new" -type f | wc -l) of $((2 * smtp_messages)) to the INBOX"
/usr/sbin/postfix -c "$postfix_dir" stop >/dev/null 2>&1
postfix_dir=

# ---- the mailbox -----------------------------------------------------------

# egret adopts Maildir files it did not write at the next load of the
# account, so the same files go to both servers while egret is stopped.
stop_egret
python3 "$here/make_mailbox.py" "$work/seed" "$fetch_messages" >&2
find "$inbox/cur" "$inbox/new" -type f -delete
cp "$work/seed/cur/"* "$inbox/cur/"
start_egret

mkdir -p "$work/dovecot/mail" "$work/dovecot/run"
cp -r "$work/seed" "$work/dovecot/mail/Maildir"
chown -R mail:mail "$work/dovecot/mail"
d_imap=$(free_port)
cat >"$work/dovecot/dovecot.conf" <<CF
protocols = imap
listen = 127.0.0.1
base_dir = $work/dovecot/run
state_dir = $work/dovecot/run/state
log_path = $work/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 8
mail_location = maildir:$work/dovecot/mail/Maildir
passdb {
  driver = static
  args = password=$password
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$work/dovecot/mail
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $d_imap
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0
  }
}
CF
/usr/sbin/dovecot -F -c "$work/dovecot/dovecot.conf" &
dovecot_pid=$!
wait_port "$d_imap"
say "dovecot $(/usr/sbin/dovecot --version) on 127.0.0.1:$d_imap"
ss -ltn | grep -E ":$d_imap\b" | grep -v 127.0.0.1 && die "dovecot listens beyond loopback"

echo
echo "IMAP, $fetch_messages messages ($(du -sh "$work/seed/cur" | cut -f1)), best and median of $rounds"
echo "egret:"
python3 "$here/imap_fetch.py" "127.0.0.1:$e_imap" crew "$password" "$rounds"
echo "dovecot:"
python3 "$here/imap_fetch.py" "127.0.0.1:$d_imap" crew "$password" "$rounds"
