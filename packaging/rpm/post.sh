# rolesh %post (rpm). $1: 1 install, 2 upgrade. Works without systemd as PID 1: units are
# enabled (symlinks) but nothing is started unless /run/systemd/system exists.
shell=/usr/bin/rolesh

if [ ! -f /etc/shells ]; then
	echo "$shell" >/etc/shells
elif ! grep -qxF "$shell" /etc/shells; then
	echo "$shell" >>/etc/shells
fi

mkdir -p /etc/rolesh/config.d
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create rolesh.conf >/dev/null 2>&1 || :
else
	mkdir -p /run/rolesh /var/log/rolesh/sessions
	[ -d /run/rolesh/sessions ] || mkdir -m 0711 /run/rolesh/sessions
	chown rolesh:rolesh /var/log/rolesh /var/log/rolesh/sessions
	chmod 0750 /var/log/rolesh /var/log/rolesh/sessions
fi

running=no
if [ -d /run/systemd/system ]; then
	running=yes
	systemctl daemon-reload >/dev/null 2>&1 || :
fi

if check_output=$("$shell" check 2>&1); then
	config_ok=yes
else
	config_ok=no
	echo "rolesh: the broker is not enabled or restarted: \`rolesh check\` rejects the configuration:" >&2
	printf '%s\n' "$check_output" | sed 's/^/  /' >&2
	echo "rolesh: fix /etc/rolesh/config.toml, then run: rolesh check && systemctl enable --now rolesh-broker.socket rolesh-broker.service" >&2
fi

# The session monitor reads no configuration (it asks the broker about each login, and
# refuses logins while the broker is down): it is enabled and started whatever the
# configuration says, and restarted on every upgrade, since a daemon whose binary was replaced
# cannot start session monitors. Running sessions go on (KillMode=process).
monitor_units="rolesh-monitor.socket rolesh-monitor.service"

if command -v systemctl >/dev/null 2>&1; then
	if [ "$1" = 1 ]; then
		# First installation: the IMDS guard and the session monitor always, the broker with
		# a valid configuration.
		systemctl enable rolesh-imds-guard.service $monitor_units >/dev/null 2>&1 || :
		[ "$config_ok" = yes ] &&
			systemctl enable rolesh-broker.socket rolesh-broker.service >/dev/null 2>&1
		if [ "$running" = yes ]; then
			systemctl start rolesh-imds-guard.service ||
				echo "rolesh: could not start the IMDS guard; see: systemctl status rolesh-imds-guard" >&2
			systemctl start $monitor_units ||
				echo "rolesh: could not start the session monitor; see: journalctl -u rolesh-monitor" >&2
			if [ "$config_ok" = yes ]; then
				systemctl start rolesh-broker.socket rolesh-broker.service ||
					echo "rolesh: could not start the broker; see: journalctl -u rolesh-broker" >&2
			fi
		fi
	elif systemctl -q is-enabled rolesh-broker.socket 2>/dev/null; then
		# Upgrade, e.g. from a version without the session monitor: every login goes through
		# it, so a bastion whose broker is enabled gets the monitor enabled too (rpm keeps no
		# record of an administrator's earlier choice; without the monitor nobody logs in).
		systemctl enable $monitor_units >/dev/null 2>&1 || :
	fi
	if [ "$1" != 1 ] && [ "$running" = yes ]; then
		# Upgrade: the session monitor and a running broker on the new binary, the guard
		# re-applied atomically.
		systemctl try-restart rolesh-monitor.service ||
			echo "rolesh: could not restart the session monitor; see: journalctl -u rolesh-monitor" >&2
		for unit in $monitor_units; do
			systemctl -q is-enabled "$unit" 2>/dev/null && systemctl start "$unit"
		done
		systemctl try-reload-or-restart rolesh-imds-guard.service >/dev/null 2>&1 || :
		if [ "$config_ok" = yes ]; then
			systemctl try-restart rolesh-broker.service ||
				echo "rolesh: could not restart the broker; see: journalctl -u rolesh-broker" >&2
		fi
	fi
fi
exit 0
