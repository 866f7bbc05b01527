#ifndef STUB_state
#define STUB_state
#endif
