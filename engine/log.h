#ifndef STUB_log
#define STUB_log
#endif
