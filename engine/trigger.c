/* stub, to be written */ typedef int stub_trigger_t;
