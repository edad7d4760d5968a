#include "hetrain/cli/cli.h"

int main(int argc, char **argv) { return hetrain::run_cli(argc, argv); }
