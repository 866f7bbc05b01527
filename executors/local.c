/* stub, to be written */ typedef int stub_local_t;
