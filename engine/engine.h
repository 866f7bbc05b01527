#ifndef STUB_engine
#define STUB_engine
#endif
