"""The README that ``racklet init gitops`` writes: a lesson plan for a class, in the repo."""

README = """\
# Our rack, in Git

This repository *is* the rack's desired state. Racklet's controller watches it and makes
the rack match whatever the newest commit on `main` says. Nobody clicks buttons: you change
a file, commit, and the rack follows. Undo is `git revert`.

```
README.md          this file
gitsource.yaml     tells the controller to follow this repository (apply it once)
rack/rack.yaml     the rack: power supply rating, slots
rack/units/*.yaml  one compute unit per file
```

## 1. Connect the rack to this repository (once)

```sh
racklet apply -f {{DIR}}/gitsource.yaml
racklet get gitsources          # READY True, COMMIT = the newest commit here
```

## 2. Change something and commit

Switch unit-3 off: edit `rack/units/unit-3.yaml`, set `power: Off`, then

```sh
git commit -am "unit-3: off for maintenance"
racklet get units -w            # unit-3 goes Off within a couple of seconds
racklet describe gitsource {{SOURCE}}   # the history shows your commit
```

## 3. Make a mistake on purpose

Set `slot: 99` in a unit file and commit. Nothing of that commit is applied — not even the
other files it changed — and the source says exactly what is wrong:

```sh
racklet get gitsources -o wide  # READY False, MESSAGE names the file and the field
git revert --no-edit HEAD       # fixed: the next commit applies
```

## 4. Drift: change the rack behind Git's back

```sh
racklet power off unit-1        # a manual change to a Git-managed unit
racklet events --for gitsource/{{SOURCE}}   # DriftReverted: the controller put it back
```

Git is the source of truth; a manual change lasts only until the next sync (at most
`spec.interval`, or right away with `racklet gitops sync {{SOURCE}}`).

## 5. Remove something

Delete `rack/units/unit-5.yaml` and commit. With `spec.prune: true` (see `gitsource.yaml`)
the controller deletes the unit object too; with `prune: false` it would leave it alone.

## 6. Pause

Set `suspend: true` in `gitsource.yaml` and `racklet apply -f gitsource.yaml`: commits
are no longer applied until you set it back to `false`.

## Rules of the game

* One object per document; several documents per file are fine (`---` between them).
* Every file under `rack/` ending in `.yaml`, `.yml` or `.json` is applied.
* Names: lower-case letters, digits and `-` (a DNS label), at most 63 characters.
* `power: Off` means the string Off (Racklet reads YAML 1.2, where only `true`/`false` are
  booleans).
"""
