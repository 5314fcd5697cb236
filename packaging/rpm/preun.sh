# rolesh %preun (rpm). $1: 0 erase, 1 upgrade. On erase, stop and disable the units.
# Stopping the session monitor ends the daemon only (KillMode=process): sessions that run
# go on to their end, as sshd's do when sshd stops.
units="rolesh-monitor.service rolesh-monitor.socket rolesh-broker.service rolesh-broker.socket rolesh-imds-guard.service"
if [ "$1" = 0 ] && command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop $units >/dev/null 2>&1 || :
	fi
	systemctl disable $units >/dev/null 2>&1 || :
fi
exit 0
