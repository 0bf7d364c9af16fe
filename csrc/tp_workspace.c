/* The per-thread scratch of the row kernels (its parts: tp_workspace.h). */
#include <stdlib.h>

#include "tp_workspace.h"

tp_workspace *tp_workspace_new(void) { return calloc(1, sizeof(tp_workspace)); }

void tp_workspace_free(tp_workspace *ws) { free(ws); }
