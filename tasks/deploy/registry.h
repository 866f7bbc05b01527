/* The model registry shared by kiln-deploy and kiln-serve (docs/model-registry.md):
 *   REGISTRY/NAME/VERSION/model.json   the model file (docs/model-format.md)
 *   REGISTRY/NAME/VERSION/meta.json    name, version, created, checksum, metrics
 *   REGISTRY/NAME/current              a symlink to "VERSION", replaced atomically */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stddef.h>

/* Versions are positive integers.  Fills up to MAX versions of DIR (REGISTRY/NAME)
 * in increasing order; returns their count (which may exceed MAX) or -1. */
int reg_versions(const char *dir, long *out, int max);
/* The version "current" points at, 0 when there is none, -1 when it is broken. */
long reg_current(const char *dir);
/* Points DIR/current at VERSION: a new symlink renamed over the old one. */
int reg_set_current(const char *dir, long version, char *err, size_t errlen);

#endif
