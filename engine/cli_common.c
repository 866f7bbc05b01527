/* stub, to be written */ typedef int stub_cli_common_t;
