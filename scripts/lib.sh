# Shared by scripts/dev, scripts/test, scripts/lock and .ci/run (sourced, not run).
# Every install goes through the hash-checked locks in requirements/, by uv,
# itself installed from requirements/bootstrap.txt by pip.

# ensure_venv DIR: a virtualenv at DIR with the pinned uv in it.
ensure_venv() {
  local venv=$1 pinned
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  pinned=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/bootstrap.txt)
  if [ "$("$venv/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$pinned" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
      -r requirements/bootstrap.txt
  fi
}

# install_locked DIR LOCK: the locked versions, then notifier itself (editable).
install_locked() {
  local venv=$1 lock=$2
  ensure_venv "$venv"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$lock"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps -e .
}
