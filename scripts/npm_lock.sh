# scripts/npm_lock.sh (sourced by fetch_tokenizers.sh and fetch_test_clients.sh):
# installed_as_locked DIR: whether DIR/node_modules holds exactly what DIR/package-lock.json
# names: every locked package at its locked version and integrity (npm records what it
# installed in node_modules/.package-lock.json).
installed_as_locked() {
  [ -f "$1/node_modules/.package-lock.json" ] || return 1
  (cd "$1" && node --input-type=module -e '
    import fs from "fs";
    const want = JSON.parse(fs.readFileSync("package-lock.json")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json")).packages;
    for (const [path, meta] of Object.entries(want)) {
      if (path === "") continue;
      const pkg = path + "/package.json";
      if (!have[path] || have[path].integrity !== meta.integrity || !fs.existsSync(pkg) ||
          JSON.parse(fs.readFileSync(pkg)).version !== meta.version) process.exit(1);
    }')
}
