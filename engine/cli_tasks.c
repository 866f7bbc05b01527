/* stub, to be written */ typedef int stub_cli_tasks_t;
