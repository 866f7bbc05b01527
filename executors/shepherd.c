/* stub, to be written */ typedef int stub_shepherd_t;
