/* stub, to be written */ typedef int stub_cli_serve_t;
