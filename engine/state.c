/* stub, to be written */ typedef int stub_state_t;
