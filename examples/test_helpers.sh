# Shared by the example tests (cli_test.sh, onnx_test.sh), which source it after setting
# `work` (their scratch directory) and `failures=0`.

# fail WHAT: reports a failed check and counts it; the test exits with the count at the end.
fail() {
    echo "FAILED: $*"
    failures=$((failures + 1))
}

# expect_error MESSAGE COMMAND...: the command fails within 10 s, saying MESSAGE on stderr.
expect_error() {
    local message=$1
    shift
    local status=0
    timeout 10 "$@" > "$work/out" 2> "$work/err" || status=$?
    if [[ $status -eq 0 || $status -eq 124 ]] || ! grep -qF -- "$message" "$work/err"; then
        fail "$* (exit $status): expected '$message', got: $(cat "$work/err")"
    fi
}
