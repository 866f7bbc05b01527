/* stub, to be written */ typedef int stub_cli_test_t;
