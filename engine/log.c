/* stub, to be written */ typedef int stub_log_t;
