#!/bin/sh
# lfmri image entry point: the first argument picks the tool, the rest are its options.
#   train    [overrides]    python /app/train.py   (also when the first argument is an override)
#   evaluate [overrides]    python /app/evaluate.py
#   predict  key=value ...  python -m lfmri.cli.predict
#   export   key=value ...  python -m lfmri.cli.export
#   sweep    summarize output_dir=DIR  python -m lfmri.cli.sweep
#   pretrained list|show NAME  python -m lfmri.cli.pretrained (the shipped networks and their cards)
#   python|bash|sh ...      that command
# Absolute paths: Apptainer runs the entry point from the caller's directory, not WORKDIR.
set -e
PY="${LFMRI_PYTHON:-/app/.venv/bin/python}"   # overridable for tests
APP="${LFMRI_APP:-/app}"
case "$1" in
    train) shift; exec "$PY" "$APP/train.py" "$@" ;;
    evaluate) shift; exec "$PY" "$APP/evaluate.py" "$@" ;;
    predict|export|sweep|pretrained) tool="$1"; shift; exec "$PY" -m "lfmri.cli.$tool" "$@" ;;
    python|bash|sh) exec "$@" ;;
    *) exec "$PY" "$APP/train.py" "$@" ;;
esac
