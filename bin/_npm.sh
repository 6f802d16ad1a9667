# Sourced by bin/test and bin/demo: make sure node_modules matches package-lock.json and holds the
# OHIF Viewer pinned in package.json. Usage: ensure_node_modules
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
    ensure_ohif_viewer
}

# The OHIF Viewer is used only for the prebuilt dist/ its npm package ships, so only that package's
# tarball is fetched (npm pack), checked against the integrity pinned in package.json ("ohifViewer")
# and unpacked into node_modules/@ohif/app; its build-time dependencies are never installed.
ensure_ohif_viewer() {
    local version integrity target stamp tmp tarball actual
    read -r version integrity < <(node -p 'const v = require("./package.json").ohifViewer; v.version + " " + v.integrity')
    target="node_modules/@ohif/app"
    stamp="$target/.installed-$version"
    [ -f "$stamp" ] && return 0
    tmp="$(mktemp -d)"
    npm pack "@ohif/app@$version" --pack-destination "$tmp" --silent >/dev/null
    tarball="$(ls "$tmp"/*.tgz)"
    actual="$(node -p 'const c = require("crypto"), fs = require("fs");
        "sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64")' "$tarball")"
    if [ "$actual" != "$integrity" ]; then
        rm -rf "$tmp"
        echo "@ohif/app@$version: the tarball's integrity $actual is not the one pinned in package.json." >&2
        return 1
    fi
    rm -rf "$target"
    mkdir -p "$target"
    tar -xzf "$tarball" -C "$target" --strip-components=1
    rm -rf "$tmp"
    # Gzipped copies beside the program files, which MedPortal sends to browsers that take gzip.
    find "$target/dist" -type f -size +1k \( -name '*.js' -o -name '*.mjs' -o -name '*.css' -o -name '*.wasm' \
        -o -name '*.json' -o -name '*.svg' \) -exec gzip -k -6 {} +
    touch "$stamp"
}
