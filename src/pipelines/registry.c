/* The registry of public slugs (one slug_<name>.c each) plus pipelines that
 * tests register before serving. */
#include <string.h>

#include "pipelines/pipeline.h"

extern const dg_pipeline dg_slug_sd15_img2img;
extern const dg_pipeline dg_slug_style_transfer;
extern const dg_pipeline dg_slug_face_to_many;
extern const dg_pipeline dg_slug_face_to_sticker;
extern const dg_pipeline dg_slug_become_image;

#define DG__REGISTRY_MAX 32

static const dg_pipeline *registry[DG__REGISTRY_MAX] = {
    &dg_slug_sd15_img2img, &dg_slug_style_transfer, &dg_slug_face_to_many,
    &dg_slug_face_to_sticker, &dg_slug_become_image,
};
static size_t registry_n = 5;

const dg_pipeline *dg_pipeline_find(const char *slug) {
  if (!slug) return NULL;
  for (size_t i = 0; i < registry_n; i++)
    if (strcmp(registry[i]->slug, slug) == 0) return registry[i];
  return NULL;
}

const dg_pipeline *const *dg_pipeline_list(size_t *n) {
  if (n) *n = registry_n;
  return registry;
}

dg_status dg_pipeline_register(const dg_pipeline *p) {
  if (!p || !p->slug || !p->run) return DG_STATUS_ERR_INVALID;
  if (dg_pipeline_find(p->slug)) return dg_pipeline_find(p->slug) == p ? DG_STATUS_OK : DG_STATUS_ERR_INVALID;
  if (registry_n >= DG__REGISTRY_MAX) return DG_STATUS_ERR_LIMIT;
  registry[registry_n++] = p;
  return DG_STATUS_OK;
}

#include <stdio.h>
#include <sys/stat.h>

#include "pipelines/schema.h"

int dg__pipeline_missing_files(const char *models_dir, const char *const *files, char *missing, size_t n) {
  int count = 0;
  size_t off = 0;
  if (n) missing[0] = '\0';
  for (int i = 0; files[i]; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", models_dir ? models_dir : "models", files[i]);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) continue;
    count++;
    if (off < n) off += (size_t)snprintf(missing + off, n - off, "%s%s", off ? " " : "", path);
  }
  return count;
}
