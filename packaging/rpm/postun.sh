# rolesh %postun (rpm). $1: 0 erase, 1 upgrade. On erase, drop /usr/bin/rolesh from
# /etc/shells. rpm has no purge: like other rpm packages, rolesh keeps the user rolesh, the
# group rolesh-users and /var/log/rolesh (audit copy, recordings); an edited config is
# saved as /etc/rolesh/config.toml.rpmsave.
if [ "$1" = 0 ] && [ -f /etc/shells ]; then
	sed -i '\|^/usr/bin/rolesh$|d' /etc/shells
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
