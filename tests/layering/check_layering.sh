#!/usr/bin/env bash
# Checks that drcnn's static libraries depend one way (CMakeLists.txt, docs/architecture.md):
# no library needs a symbol that only a library it may not depend on defines.
#
#   check_layering.sh NAME=ARCHIVE:ALLOWED1,ALLOWED2 ...
#
# ALLOWED lists every library NAME may use (the whole closure, not just direct links). A symbol
# NAME leaves undefined that it defines itself, or that an allowed library defines, is fine
# (header templates and inline functions are defined weakly in many archives); one that only a
# disallowed drcnn library defines is a layering violation, printed demangled.
set -euo pipefail
NM=${NM:-nm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

names=()
declare -A archive allowed
for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  archive[$name]=${rest%%:*}
  allowed[$name]=${rest#*:}
  names+=("$name")
  [[ -f ${archive[$name]} ]] || { echo "check_layering: $name: no archive at ${archive[$name]}" >&2; exit 2; }
  "$NM" -g --defined-only "${archive[$name]}" 2>/dev/null | awk 'NF >= 3 {print $3}' | sort -u > "$work/$name.def"
  "$NM" -g -u "${archive[$name]}" 2>/dev/null | awk 'NF >= 2 {print $2}' | sort -u > "$work/$name.undef"
done
[[ ${#names[@]} -ge 2 ]] || { echo "check_layering: expected at least two libraries, got ${#names[@]}" >&2; exit 2; }

status=0
for name in "${names[@]}"; do
  # What NAME needs from outside itself and its allowed libraries.
  cp "$work/$name.def" "$work/ok"
  IFS=',' read -r -a deps <<< "${allowed[$name]}"
  for dep in "${deps[@]}"; do
    [[ -z $dep ]] && continue
    [[ -n ${archive[$dep]:-} ]] || { echo "check_layering: $name may use '$dep', which was not given" >&2; exit 2; }
    sort -u -m "$work/ok" "$work/$dep.def" -o "$work/ok"
  done
  comm -23 "$work/$name.undef" "$work/ok" > "$work/needed"
  for other in "${names[@]}"; do
    [[ $other == "$name" ]] && continue
    comm -12 "$work/needed" "$work/$other.def" > "$work/bad"
    if [[ -s $work/bad ]]; then
      status=1
      echo "LAYERING VIOLATION: $name (may use: ${allowed[$name]:-nothing}) needs $(wc -l < "$work/bad") symbol(s) that only $other defines, e.g.:"
      head -5 "$work/bad" | c++filt | sed 's/^/    /'
    fi
  done
  echo "$name: $(wc -l < "$work/$name.def") symbols defined, $(wc -l < "$work/needed") taken from outside drcnn's allowed libraries (system and third-party)"
done
if [[ $status -eq 0 ]]; then echo "check_layering: ${#names[@]} libraries, every dependency one way"; fi
exit $status
