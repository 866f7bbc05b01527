/* stub, to be written */ typedef int stub_engine_t;
