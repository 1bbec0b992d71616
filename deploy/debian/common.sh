# Shared by the Tether packages' maintainer scripts (scripts/package puts it at the top of
# each). Every step is idempotent: an upgrade or a second configure changes nothing that is
# already right. $DPKG_ROOT is set when dpkg installs into another root
# (dpkg --root DIR --force-script-chrootless); every path is taken under it.
ROOT="${DPKG_ROOT:-}"

# sysusers creates the users and groups of a sysusers.d line, under $ROOT.
sysusers() {
	if command -v systemd-sysusers >/dev/null 2>&1; then
		if [ -n "$ROOT" ]; then
			systemd-sysusers --root="$ROOT" --inline "$@"
		else
			systemd-sysusers --inline "$@"
		fi
	else
		# No systemd-sysusers (and so no systemd): adduser, for the root we run in only.
		for line in "$@"; do
			set -- $line
			case "$1" in
			g) getent group "$2" >/dev/null || addgroup --system "$2" ;;
			u) getent passwd "$2" >/dev/null || adduser --system --group --home "$5" --no-create-home --shell /usr/sbin/nologin "$2" ;;
			m) adduser "$2" "$3" >/dev/null ;;
			esac
		done
	fi
}

# id_of prints the numeric id of a user (passwd) or group (group) as the root knows it.
id_of() {
	awk -F: -v n="$2" '$1 == n { print $3; exit }' "$ROOT/etc/$1"
}

# own sets a path's owner, group and mode; it makes a missing directory first.
own() {
	path="$ROOT$1"
	[ -e "$path" ] || mkdir -p "$path"
	chown "$(id_of passwd "$2"):$(id_of group "$3")" "$path"
	chmod "$4" "$path"
}

# systemd_enable enables a unit the way dh_installsystemd does (deb-systemd-helper keeps the
# admin's choice across upgrades: a unit the admin disabled stays disabled).
systemd_enable() {
	if command -v deb-systemd-helper >/dev/null 2>&1 && [ -z "$ROOT" ]; then
		deb-systemd-helper unmask "$1" >/dev/null || true
		if deb-systemd-helper --quiet was-enabled "$1"; then
			deb-systemd-helper enable "$1" >/dev/null || true
		else
			deb-systemd-helper update-state "$1" >/dev/null || true
		fi
	elif command -v systemctl >/dev/null 2>&1; then
		if [ -n "$ROOT" ]; then
			systemctl --root="$ROOT" enable "$1" >/dev/null 2>&1 || true
		else
			systemctl enable "$1" >/dev/null 2>&1 || true
		fi
	fi
}

# running is true when systemd runs the root we install into.
running() {
	[ -z "$ROOT" ] && [ -d /run/systemd/system ]
}
