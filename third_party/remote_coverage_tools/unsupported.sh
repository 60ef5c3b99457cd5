#!/bin/sh
echo "coverage is not available in the offline devmemd build" >&2
exit 1
