import type { Command } from "commander";

/** Every command path ("" for the root, "proxy-host create", ...) with its subcommands and options. */
function commandTable(cmd: Command, prefix = ""): { path: string; words: string[] }[] {
  const options = cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
  const subs = cmd.commands.map((c) => c.name());
  const here = { path: prefix, words: [...subs, ...options] };
  return [here, ...cmd.commands.flatMap((c) => commandTable(c, prefix ? `${prefix} ${c.name()}` : c.name()))];
}

/**
 * A completion script for bash or zsh (zsh through bashcompinit): completes command names at
 * every level and the options of the command typed so far; global options everywhere.
 */
export function completionScript(program: Command, shell: "bash" | "zsh"): string {
  const table = commandTable(program);
  const globals = table[0]!.words.filter((w) => w.startsWith("-"));
  const cases = table
    .map((t) => `    "${t.path}") words="${[...t.words, ...(t.path ? globals : [])].join(" ")}" ;;`)
    .join("\n");
  const bash = `# cpm completion for ${shell}; load with: source <(cpm completion ${shell})
_cpm_complete() {
  local cur path="" w i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case " $(_cpm_words "$path") " in *" $w "*) path="\${path:+$path }$w" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_cpm_words "$path")" -- "$cur"))
}
_cpm_words() {
  local words=""
  case "$1" in
${cases}
  esac
  echo "$words"
}
complete -F _cpm_complete cpm
`;
  return shell === "zsh" ? `autoload -U +X bashcompinit && bashcompinit\n${bash}` : bash;
}
