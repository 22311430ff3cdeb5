/*
 * Scores one image with the AFR-CLIP C API and prints the result as JSON:
 *     {"score": 0.123, "map_max": 0.456, "category": "zipper", "scored_as": "object"}
 *
 *     score MODEL.onnx IMAGE.ppm [CATEGORY] [MAP_OUT]
 *
 * IMAGE is a binary PPM (P6, maxval 255; `convert x.png x.ppm` makes one).
 * CATEGORY defaults to "object"; a name the model's table lacks is scored
 * with the generic "object" row, as `afr score` does. MAP_OUT, if given,
 * receives the anomaly map as width * height little-endian float32 values.
 * Build: see the Makefile beside this file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afr.h"

/* Largest side read; the runtime refuses more anyway. */
#define MAX_SIDE 16384

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, afr_last_error_message());
    return 1;
}

/* Reads one header number of a PPM, skipping whitespace and comments. */
static int ppm_number(FILE *f, unsigned long *out) {
    int c = fgetc(f);
    while (c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        if (c == '#')
            while (c != '\n' && c != EOF) c = fgetc(f);
        c = fgetc(f);
    }
    if (c < '0' || c > '9') return -1;
    unsigned long v = 0;
    while (c >= '0' && c <= '9') {
        v = v * 10 + (unsigned long)(c - '0');
        if (v > 1000000UL) return -1;
        c = fgetc(f);
    }
    *out = v; /* the single whitespace after maxval was consumed above */
    return 0;
}

/* Loads a P6 PPM into a malloc'd RGB8 buffer; prints why it cannot. */
static unsigned char *read_ppm(const char *path, unsigned long *w, unsigned long *h) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    unsigned long maxval = 0;
    unsigned char *rgb = NULL;
    if (fgetc(f) != 'P' || fgetc(f) != '6' || ppm_number(f, w) || ppm_number(f, h) || ppm_number(f, &maxval)) {
        fprintf(stderr, "error: %s: not a binary PPM (P6)\n", path);
    } else if (maxval != 255 || *w == 0 || *h == 0 || *w > MAX_SIDE || *h > MAX_SIDE) {
        fprintf(stderr, "error: %s: %lux%lu maxval %lu: need 8-bit, 1..%d pixels a side\n", path, *w, *h, maxval,
                MAX_SIDE);
    } else if (!(rgb = malloc(*w * *h * 3))) {
        fprintf(stderr, "error: %s: out of memory\n", path);
    } else if (fread(rgb, 3, *w * *h, f) != *w * *h) {
        fprintf(stderr, "error: %s: truncated pixel data\n", path);
        free(rgb);
        rgb = NULL;
    }
    fclose(f);
    return rgb;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL.onnx IMAGE.ppm [CATEGORY] [MAP_OUT]\n", argv[0]);
        return 2;
    }
    const char *category_name = argc > 3 ? argv[3] : "object";
    unsigned long width, height;
    unsigned char *rgb = read_ppm(argv[2], &width, &height);
    if (!rgb) return 1;

    AfrDetector *detector = NULL;
    if (afr_open(argv[1], &detector) != AFR_STATUS_OK) return fail("cannot open the model");
    AfrInfo info;
    size_t category, map_len;
    const char *scored_as;
    if (afr_info(detector, &info) != AFR_STATUS_OK || afr_category_index(detector, category_name, true, &category) ||
        afr_category_name(detector, category, &scored_as) || afr_map_len(width, height, &map_len) ||
        afr_prepare(detector, width, height)) {
        afr_close(detector);
        return fail(argv[1]);
    }
    fprintf(stderr, "%s: %ux%u input, %u categories, %s\n", argv[1], info.input_size, info.input_size,
            info.category_count, info.precision);
    if (strcmp(scored_as, category_name) != 0)
        fprintf(stderr, "warning: no row for category `%s`; scored with `%s`\n", category_name, scored_as);

    float *map = malloc(map_len * sizeof(float));
    AfrFrame frame = {rgb, width * height * 3, width, height, 0, AFR_PIXEL_FORMAT_RGB8};
    AfrScores scores;
    int rc = 0;
    if (!map) {
        fprintf(stderr, "error: out of memory\n");
        rc = 1;
    } else if (afr_score(detector, &frame, category, map, map_len, &scores) != AFR_STATUS_OK) {
        rc = fail(argv[2]);
    } else {
        printf("{\"score\": %.9g, \"map_max\": %.9g, \"category\": \"%s\", \"scored_as\": \"%s\"}\n", scores.image,
               scores.map_max, category_name, scored_as);
        if (argc > 4) {
            FILE *out = fopen(argv[4], "wb");
            if (!out || fwrite(map, sizeof(float), map_len, out) != map_len || fclose(out) != 0) {
                perror(argv[4]);
                rc = 1;
            }
        }
    }
    free(map);
    free(rgb);
    afr_close(detector);
    return rc;
}
