# Sourced by start and manage: Debian's python3-django, the kit by path.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$here:$here/../django:$here/../../../integrations/django${PYTHONPATH:+:$PYTHONPATH}"
export DJANGO_SETTINGS_MODULE=kitapp.settings
