// Package deploy holds what a facility installs beside the programs: systemd units, the
// serial devices' udev rule, sysusers.d lines, default config, the Debian maintainer scripts,
// Prometheus alert rules and a Grafana dashboard. Its tests check the units with
// systemd-analyze; sync/relay's tests check the rules and the dashboard against the series
// relayd exports; scripts/package builds the packages.
package deploy
