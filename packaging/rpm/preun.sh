# rolesh %preun (rpm). $1: 0 erase, 1 upgrade. On erase, stop and disable the units.
if [ "$1" = 0 ] && command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop rolesh-broker.service rolesh-broker.socket rolesh-imds-guard.service >/dev/null 2>&1 || :
	fi
	systemctl disable rolesh-broker.service rolesh-broker.socket rolesh-imds-guard.service >/dev/null 2>&1 || :
fi
exit 0
