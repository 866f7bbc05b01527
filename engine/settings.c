/* stub, to be written */ typedef int stub_config_t;
