#!/bin/sh
# Regenerates the cookie corpus (sessioncookie/testdata/cookiecorpus.jsonl)
# from its generator, and what every real parser reads from each entry
# (cookiecorpus.recorded.jsonl). Review the diff of the recorded file: a
# change there is a framework reading some header differently.
set -eu
cd "$(dirname "$0")/../../.."
exec go test ./sessioncookie -count=1 -run '^TestCookieCorpus$' -update-cookie-corpus -v
