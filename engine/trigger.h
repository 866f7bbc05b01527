#ifndef STUB_trigger
#define STUB_trigger
#endif
