# Past tracking logs: the given paths, or every tracking log the job can see (the LMS and
# CMS files of `tutor local`, rotated copies included, and the archive volume on Kubernetes).
if [ "$#" -eq 0 ]; then
    for cairnlake_path in /openedx-data/lms/logs/tracking.log* /openedx-data/cms/logs/tracking.log* /openedx-data/archive/*; do
        if [ -e "$cairnlake_path" ]; then set -- "$@" "$cairnlake_path"; fi
    done
fi
if [ "$#" -eq 0 ]; then
    echo "No tracking log to backfill: give --path, or put past logs in the archive volume (see docs/tutor.md)." >&2
    exit 1
fi
cairn backfill --parallel "$CAIRNLAKE_PARALLEL" "$@"
