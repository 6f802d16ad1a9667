# Sourced by bin/demo and bin/test: make sure .venv exists with the pinned requirements.
# Usage: ensure_venv requirements.txt|requirements-dev.txt
ensure_venv() {
    local requirements="$1"
    local python="${MEDPORTAL_PYTHON:-python3.11}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "MedPortal needs Python 3.11 ($python not found)." >&2
        return 1
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    # Reinstall only when the pinned requirements changed.
    local stamp=".venv/.installed-$(cat requirements.txt "$requirements" | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -r "$requirements"
        touch "$stamp"
    fi
    export PATH="$PWD/.venv/bin:$PATH"
    export VIRTUAL_ENV="$PWD/.venv"
}
