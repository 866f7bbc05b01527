/* stub, to be written */ typedef int stub_cmd_t;
