#ifndef STUB_store
#define STUB_store
#endif
