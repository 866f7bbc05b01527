/* stub, to be written */ typedef int stub_load_yaml_t;
