/* stub, to be written */ typedef int stub_store_t;
