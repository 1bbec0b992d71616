// Package version is the build's version, set by the packaging (scripts/package) with
// -ldflags "-X github.com/tether-kiosk/tether/internal/version.version=0.1.0+git123.abcdef0".
package version

// version is written by the linker only (-X needs a variable); nothing assigns it at run time.
var version string

// String is the version, or "dev" for a build that was not packaged.
func String() string {
	if version == "" {
		return "dev"
	}
	return version
}
