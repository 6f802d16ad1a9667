# Sourced by bin/test (and any script that needs the JavaScript packages): make sure
# node_modules matches package-lock.json. Usage: ensure_node_modules
ensure_node_modules() {
    if ! command -v npm >/dev/null 2>&1; then
        # Without Node the tests that need a package skip (and fail in CI, which sets CI).
        echo "npm not found: the JavaScript packages (package-lock.json) are not installed." >&2
        return 0
    fi
    # Reinstall only when the lock file changed; npm ci empties node_modules first, so the
    # stamp of an older lock file goes with it.
    local stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        npm ci --no-audit --no-fund --silent
        touch "$stamp"
    fi
}
