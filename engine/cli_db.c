/* stub, to be written */ typedef int stub_cli_db_t;
