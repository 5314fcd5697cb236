# rolesh %pre (rpm): the system user rolesh (the broker) and the group rolesh-users, before the
# files owned by rolesh are unpacked. $1: 1 install, 2 upgrade.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --replace=/usr/lib/sysusers.d/rolesh.conf - <<'SYSUSERS'
u rolesh - "rolesh credential broker" /nonexistent /usr/sbin/nologin
g rolesh-users -
SYSUSERS
else
	getent group rolesh >/dev/null || groupadd --system rolesh
	getent passwd rolesh >/dev/null ||
		useradd --system --gid rolesh --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "rolesh credential broker" rolesh
	getent group rolesh-users >/dev/null || groupadd --system rolesh-users
fi
exit 0
