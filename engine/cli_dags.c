/* stub, to be written */ typedef int stub_cli_dags_t;
