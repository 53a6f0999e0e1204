"""Shell completion scripts, generated from the argument parser so they cannot fall behind it.

Commands, options and choices are written into the script; kinds come from the CLI's kind
table; object names are asked of the running rack at completion time with
``racklet get KIND -o name`` (nothing is completed when no rack answers). zsh reuses the bash
function through ``bashcompinit``, which every zsh ships.
"""

from __future__ import annotations

import argparse
import shlex

from racklet.cli._kinds import all_names

# commands whose first positional is a kind, and whose second is a name of that kind
_KIND_COMMANDS = ("get", "describe", "delete")
_REF_COMMANDS = ("wait",)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(items: list[str]) -> str:
    return shlex.quote(" ".join(items))


def bash(parser: argparse.ArgumentParser) -> str:
    commands = _subcommands(parser)
    cases = []
    for name, sub in commands.items():
        options = sorted(o for a in sub._actions for o in a.option_strings)
        choices = [c for a in sub._actions if not a.option_strings and a.choices for c in a.choices]
        if name in _KIND_COMMANDS:
            positional = '_racklet_kind_or_name "$cmd"'
        elif name in _REF_COMMANDS:
            positional = '_racklet_ref "$cmd"'
        elif choices:
            words = _words(sorted(map(str, choices)))
            positional = f'COMPREPLY=($(compgen -W {words} -- "$cur"))'
        else:
            positional = "COMPREPLY=()"
        cases.append(
            f"    {name})\n"
            f'      if [[ "$cur" == -* ]]; then\n'
            f'        COMPREPLY=($(compgen -W {_words(options)} -- "$cur"))\n'
            f"      else\n        {positional}\n      fi ;;"
        )
    top = sorted(o for a in parser._actions for o in a.option_strings)
    return f"""# racklet completion for bash: source <(racklet completion bash)
_racklet_kinds={_words(all_names())}

_racklet_names() {{
  racklet get "$1" -o name 2>/dev/null | sed 's|^[^/]*/||'
}}

_racklet_kind_or_name() {{
  if [[ ${{#_racklet_args[@]}} -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$_racklet_kinds" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_racklet_names "${{_racklet_args[0]}}")" -- "$cur"))
  fi
}}

_racklet_ref() {{
  if [[ "$cur" == */* ]]; then
    local kind="${{cur%%/*}}"
    COMPREPLY=($(compgen -P "$kind/" -W "$(_racklet_names "$kind")" -- "${{cur#*/}}"))
  else
    COMPREPLY=($(compgen -S / -W "$_racklet_kinds" -- "$cur"))
    compopt -o nospace 2>/dev/null
  fi
}}

_racklet() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  local cmd="" i word
  _racklet_args=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${{COMP_WORDS[i]}}"
    if [[ "$word" == --config ]]; then ((i++)); continue; fi
    if [[ "$word" == -* ]]; then continue; fi
    if [[ -z "$cmd" ]]; then cmd="$word"; else _racklet_args+=("$word"); fi
  done
  if [[ "$prev" == -f || "$prev" == --filename || "$prev" == --config ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  case "$cmd" in
    "")
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W {_words(top)} -- "$cur"))
      else
        COMPREPLY=($(compgen -W {_words(sorted(commands))} -- "$cur"))
      fi ;;
{chr(10).join(cases)}
  esac
}}
complete -F _racklet racklet
"""


def zsh(parser: argparse.ArgumentParser) -> str:
    return (
        "# racklet completion for zsh: source <(racklet completion zsh)\n"
        "autoload -U +X compinit && compinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash(parser)
    )


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    return zsh(parser) if shell == "zsh" else bash(parser)
