/* stub, to be written */ typedef int stub_cli_runs_t;
