/* stub, to be written */ typedef int stub_sched_t;
