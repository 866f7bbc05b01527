/* stub, to be written */ typedef int stub_noop_t;
