# shellcheck shell=bash
# Shared by packaging/build-deb and packaging/build-release: what ships beside the binary and
# is the same on every architecture. Source it (bash); it sets no shell options.

# write_docs BIN: the gzipped man page target/man/fake-metadata.8.gz and the shell
# completions target/completions/{fake-metadata,_fake-metadata,fake-metadata.fish} (bash,
# zsh, fish), written by BIN (a fake-metadata that runs on this machine) into the current
# directory's target/. Writes nothing on stdout.
write_docs() {
    local bin=$1
    mkdir -p target/man target/completions || return 1
    gzip -9n -c packaging/fake-metadata.8 > target/man/fake-metadata.8.gz &&
        "$bin" completions bash > target/completions/fake-metadata &&
        "$bin" completions zsh > target/completions/_fake-metadata &&
        "$bin" completions fish > target/completions/fake-metadata.fish
}
