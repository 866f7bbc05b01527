#ifndef STUB_sched
#define STUB_sched
#endif
