/**
 * A graceful nginx reload that returns once new connections get the new config: checks the
 * config, notes the old workers, signals the reload, then waits until every old worker is
 * shutting down (so has closed its listening socket) and a new one runs. A bare
 * `nginx -s reload` returns before that.
 */
export function nginxReloadScript(o: { test: string; reload: string; pidFile: string; logHint: string }): string {
  return `#!/bin/sh
set -e
${o.test}
master=$(cat ${o.pidFile})
# Children of the master: field 4 of /proc/PID/stat (after the "(comm)", which may hold spaces).
workers() {
  for d in /proc/[0-9]*; do
    s=$(cat "$d/stat" 2>/dev/null) || continue
    set -- \${s##*") "}
    [ "$2" = "$master" ] && echo "\${d#/proc/}"
  done
  true
}
old=$(workers)
${o.reload}
i=0
while [ $i -lt 100 ]; do
  i=$((i + 1)); sleep 0.1
  new=no; busy=no
  for p in $(workers); do
    title=$(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null || true)
    case " $old " in
      *" $p "*) case "$title" in *"shutting down"*) ;; *) busy=yes ;; esac ;;
      *) case "$title" in *"worker process"*) new=yes ;; esac ;;
    esac
  done
  [ $new = yes ] && [ $busy = no ] && exit 0
done
echo "nginx reload: new workers not serving after 10 s (${o.logHint})" >&2
exit 1
`;
}
